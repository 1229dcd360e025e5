"""Several hosts as one DeepAR job: Lightning's DDP on the process group that
`smalgos.distributed.joined` started (the job's one rendezvous, from resourceconfig.json).

Lightning asks its cluster environment who this process is; `JoinedHosts` answers from the
joined `Cluster`: one process per host (rank = the host's place in the sorted host list), and the
processes exist already (nothing for Lightning to launch). Lightning finds the default process
group initialised and uses it as it is; DDP then averages every step's gradients over the hosts.
"""

from __future__ import annotations

from lightning.fabric.plugins.environments import ClusterEnvironment

from smalgos.distributed import Cluster


class JoinedHosts(ClusterEnvironment):
    def __init__(self, cluster: Cluster):
        super().__init__()
        self.cluster = cluster

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return self.cluster.hosts[0]

    @property
    def main_port(self) -> int:
        return 0  # unused: the process group exists

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return self.cluster.size

    def set_world_size(self, size: int) -> None:
        if size != self.cluster.size:
            raise ValueError(f"Lightning asks for {size} processes but the job has {self.cluster.size} host(s)")

    def global_rank(self) -> int:
        return self.cluster.rank

    def set_global_rank(self, rank: int) -> None:
        if rank != self.cluster.rank:
            raise ValueError(f"Lightning gives rank {rank} to host {self.cluster.host} of rank {self.cluster.rank}")

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return self.cluster.rank
