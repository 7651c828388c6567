enum _MontanaExitPlaceholder {}
