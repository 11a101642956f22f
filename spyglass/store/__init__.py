"""Storage backends behind one ``Store`` protocol."""
