"""SageMaker k-NN (`knn:1`): sampled, optionally dimension-reduced, FAISS-indexed neighbours."""
