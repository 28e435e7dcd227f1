"""Stages 2 and 3's upstream settings (steps, learning rates, loss weights), with no torch import:
``fk_uvfit.plugin`` reads them to declare ``fit:uvfit``'s parameters, and every ``fk`` command that lists
components (``fk run`` included) imports the plugins' registrations."""

STAGE2 = {
    "steps": 100,
    "initial_lr": 0.1,
    "lr_rampdown": 0.25,
    "betas": (0.9, 0.999),
    "w_id": 10.0,
    "w_color": 10.0,
    "w_lpips": 100.0,
    "w_geocross": 0.05,
}
STAGE3 = {"steps": 200, "initial_lr": 0.01, "lr_rampdown": 0.4, "betas": (0.9, 0.999), "tex_lr_scale": 0.05,
          "pose_lr_scale": 0.05, "loose_tex": False, "w_id": 0.2, "w_color": 1.6, "w_lpips": 0.0,
          "w_reg_id": 2e-4,
          "w_reg_exp": 1.6e-3, "w_gamma": 10.0, "w_geocross": 0.05, "w_lm": 2e-3}  # fmt: skip
