"""SageMaker K-Means (`kmeans:1`): web-scale mini-batch k-means with a local Lloyd's reduction."""
