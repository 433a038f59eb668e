"""Transfer Lab's core: data, backbones, the training loop, experiments and plots. No Streamlit here."""
