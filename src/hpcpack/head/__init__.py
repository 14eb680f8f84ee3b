"""The head node's parts, one concern a module, each class built on the one below it:
core -> processes -> cancels -> running -> recovery; `hpcpack.headnode.HeadNode` adds submission,
validation, allocation and the loop on top."""
