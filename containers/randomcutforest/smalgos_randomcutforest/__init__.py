"""SageMaker Random Cut Forest (`randomcutforest:1`): anomaly scores from a forest of random cut trees."""
