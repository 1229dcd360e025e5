"""SageMaker PCA (`pca:1`): principal components from streamed mini-batch summaries."""
