enum _MontanaSessionPlaceholder {}
