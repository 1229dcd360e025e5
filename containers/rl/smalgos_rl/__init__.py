"""SageMaker RL (`RLEstimator`, toolkit Ray, framework PyTorch): the user's training script on Ray
RLlib, torch and Gymnasium, run under the training-script contract (smalgos.scriptmode).

- `declaration`: script mode only, the SDK's Ray metric regexes, serving formats, variants.
- `cluster`: several hosts form one Ray cluster (head on the first host) before the script runs;
  `nodes` waits for every host's node.
- `report`: the `episode_reward_mean: <x>` lines the SDK's metric definitions read.
- `policy`: a trained policy saved without pickle (layers in JSON + safetensors weights, or a
  Q-table) and read back.
- `serve`: observations in, actions (and on request probabilities / Q-values) out.
"""
