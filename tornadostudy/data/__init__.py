"""Storm-patch data: the NCAR netCDF schema, synthetic storms, labels, augmentation, prepared sets."""

__all__: list[str] = []
