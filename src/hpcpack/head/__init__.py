"""The head node: the daemon and its requests (`daemon`, `requests`), the SQLite store (`store`), core
allocation (`scheduler`), processes (`executor`, `launch`), and the scheduler's own parts, one concern a
module, each class built on the one below it: core -> processes -> cancels -> running -> recovery;
`headnode.HeadNode` adds submission, validation, allocation and the loop on top."""
