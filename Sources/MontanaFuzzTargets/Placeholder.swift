enum _MontanaFuzzTargetsPlaceholder {}
