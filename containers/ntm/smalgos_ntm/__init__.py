"""Neural Topic Model (`ntm`): see declaration.py and model.py."""
