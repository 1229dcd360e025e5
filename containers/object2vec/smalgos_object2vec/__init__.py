"""Object2Vec (`object2vec`): see declaration.py, network.py and model.py."""
