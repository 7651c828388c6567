enum _MontanaNodePlaceholder {}
