enum _MontanaTransportPlaceholder {}
