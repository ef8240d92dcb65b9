"""What a run is: its validated config, the models, the data, the two UDFs and the Ray Data pipeline."""
