"""kdhub-detection: distil detectors on MMDetection 3.3 (DETRDistill for the DETR family, GID for dense
detectors), through mmengine's Runner."""
