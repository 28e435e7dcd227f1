"""fk's CPU backend passes the renderer conformance suite."""

from fk.testing.renderer_contract import RendererContract


class TestCpuRendererContract(RendererContract):
    backend = "cpu"
    device = "cpu"
    supports_float64 = True
