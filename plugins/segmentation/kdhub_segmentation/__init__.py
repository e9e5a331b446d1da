"""kdhub-segmentation: TransKD and generic distillation of SegFormer on MMSegmentation 1.2.

Importing this package is cheap; ``kdhub_segmentation.mm`` registers the mmseg pieces (model, data
sets, hooks), and :func:`kdhub_segmentation.export.export_student` turns a training checkpoint into a
plain mmseg checkpoint.
"""
__version__ = "0.1.0"
