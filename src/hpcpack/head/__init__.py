"""The head node: the daemon and its requests (`daemon`, `requests`, `cluster_requests`, `waits`), the
SQLite store (`store`), core allocation (`scheduler`, pure) and placement (`placement`), processes
(`executor`, `launch`), Slurm as the engine (`slurm`), and the scheduler's own parts, one concern a
module, each class built on the one below it: core -> processes -> cancels -> running -> recovery ->
nodes -> slurm_nodes -> admission -> allocation; `headnode.HeadNode` adds the verbs and the loop on top."""
