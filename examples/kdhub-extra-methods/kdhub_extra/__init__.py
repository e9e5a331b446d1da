"""kdhub-extra-methods: new methods for the installed graph and segmentation domains, from outside the project."""
