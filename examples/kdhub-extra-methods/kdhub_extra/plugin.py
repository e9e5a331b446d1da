"""The plugin: registers each method under the domain that runs it, by import string.

Nothing is imported here; a method's module is imported when a config selects it, so this plugin costs
nothing to ``kdhub list`` and needs only the domains it is used with.
"""
from kdhub import hookimpl


@hookimpl
def kdhub_register(registry):
    registry.add_distiller("plain_kl", "kdhub_extra.graph:PlainKL", "soft labels only: KL(teacher || MLP) at "
                           "temperature distill.plain_kl.temperature, no hard labels", domain="graph")
    registry.add_distiller("LogitMSEDistiller", "kdhub_extra.segmentation:LogitMSEDistiller", "pixel-wise MSE "
                           "between the decode heads' logits", domain="segmentation")
