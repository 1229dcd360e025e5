"""SageMaker LDA (`lda:1`): topic models by spectral tensor decomposition (method of moments)."""
