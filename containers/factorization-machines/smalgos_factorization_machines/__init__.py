"""SageMaker Factorization Machines (`factorization-machines:1`): a second-order FM trained in torch."""
