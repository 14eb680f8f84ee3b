"""The wire between clients and a head node: frames (`protocol`), every operation's declared shape
(`operations`), and TCP with MUNGE for head nodes on other machines (`transport`, `munge`)."""
