"""Stand-in models, quarantined here: the pocket models the demo and the tests train on the fly, and full-size
architectures with random weights for the bench profile. Each is saved in Hugging Face format and loaded through
the same from_pretrained path as a real checkpoint."""
