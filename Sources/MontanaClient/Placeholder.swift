enum _MontanaClientPlaceholder {}
