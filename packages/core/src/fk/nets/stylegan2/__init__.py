"""StyleGAN2-ADA in fk: NVIDIA's networks with their parameter names, and a pickle loader that runs nothing.

Public API (stable)::

    load_stylegan2_pickle(path, device="cpu") -> dict
        # {'G', 'D', 'G_ema': fk modules, 'augment_pipe': None | PersistentRecord,
        #  'training_set_kwargs': dict | None}; refuses any global outside its allow-list
    read_stylegan2_pickle(path) -> dict          # the same dict with networks as PersistentRecord
    build_network(record) -> torch.nn.Module     # one record -> fk module, strict state load

    Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={})
        .forward(z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='random', force_fp32=False,
                 fused_modconv=None) -> img [N, C, R, R]
        .mapping: MappingNetwork, .synthesis: SynthesisNetwork, .num_ws
    MappingNetwork(z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                   activation='lrelu', lr_multiplier=0.01, w_avg_beta=0.995)
        .forward(z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False)
            -> ws [N, num_ws, w_dim]
    SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
                     num_fp16_res=0, **block_kwargs)
        .forward(ws, noise_mode='random', force_fp32=False, fused_modconv=None) -> img
        .split_ws(ws) -> per-block ws; .block_resolutions; blocks are attributes b4, b8, ... b{R}
    SynthesisBlock(in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture='skip',
                   resample_filter=[1,3,3,1], conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                   **layer_kwargs)
        .forward(x, img, ws, force_fp32=False, fused_modconv=None, noise_mode=...) -> (x, img)
    SynthesisLayer(in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                   activation='lrelu', resample_filter=[1,3,3,1], conv_clamp=None, channels_last=False)
        .forward(x, w, noise_mode='random', fused_modconv=True, gain=1)
    ToRGBLayer(in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False)
        .forward(x, w, fused_modconv=True)
    Discriminator(c_dim, img_resolution, img_channels, architecture='resnet', channel_base=32768,
                  channel_max=512, num_fp16_res=0, conv_clamp=None, cmap_dim=None,
                  block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={})
        .forward(img, c, force_fp32=False) -> logits [N, 1]
    FullyConnectedLayer, Conv2dLayer, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer
    modulated_conv2d(x, weight, styles, noise=None, up=1, down=1, padding=0, resample_filter=None,
                     demodulate=True, flip_weight=True, fused_modconv=True)
    upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1), upsample2d, downsample2d,
    filter2d, setup_filter(f, device='cpu', normalize=True, flip_filter=False, gain=1, separable=None)
    bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None)
    conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False)

Names and arguments are NVIDIA's (``stylegan2-ada-pytorch/training/networks.py``, ``torch_utils/ops``):
``G.state_dict()`` keys are theirs one to one (``mapping.fc0.weight``, ``mapping.w_avg``,
``synthesis.b4.const``, ``synthesis.b8.conv0.affine.weight``, ``synthesis.b8.conv0.noise_const``,
``synthesis.b8.resample_filter``, ``synthesis.b8.torgb.weight``, ...). Every module keeps the arguments
it was built with (``init_args``, ``init_kwargs``). Outputs match NVIDIA's reference (CPU) ops to
float rounding (``bench/conformance_stylegan2.py``).

Composition: GMPI builds an alpha branch on each ``SynthesisBlock``'s features (``x`` of
``block(x, img, ws)``); FFHQ-UV calls ``G.synthesis(ws, noise_mode='const')`` on W+ latents.

Precision: blocks in the ``num_fp16_res`` highest resolutions run in float16 unless
``force_fp32=True``, as NVIDIA's do (their pickles for 256-1024 use 4 such blocks). On CPU pass
``force_fp32=True``: float16 convolutions are slow there and lose precision.
"""

from fk.nets.stylegan2.networks import (
    Conv2dLayer,
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    FullyConnectedLayer,
    Generator,
    MappingNetwork,
    MinibatchStdLayer,
    PersistentModule,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
)
from fk.nets.stylegan2.ops import (
    bias_act,
    conv2d_resample,
    downsample2d,
    filter2d,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from fk.nets.stylegan2.persistence import (
    NETWORK_CLASSES,
    PersistentRecord,
    build_network,
    load_stylegan2_pickle,
    read_stylegan2_pickle,
)

__all__ = [
    "NETWORK_CLASSES",
    "Conv2dLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "FullyConnectedLayer",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "PersistentModule",
    "PersistentRecord",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "bias_act",
    "build_network",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "load_stylegan2_pickle",
    "modulated_conv2d",
    "normalize_2nd_moment",
    "read_stylegan2_pickle",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
