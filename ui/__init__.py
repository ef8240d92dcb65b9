"""Streamlit-side helpers shared by the pages: charts, controls and run panels."""
