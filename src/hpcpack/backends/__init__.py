"""What the cmdlets and the `job` command speak to: the `Backend` contract (`contract`) and its
implementations; today a head node reached over its socket (`headnode`, through `client`)."""
