"""Training of video classifiers with Ray Train: labelled data, clips, trainer."""
