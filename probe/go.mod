module spawn-isolated/probe

go 1.21

require spawn-isolated/go v0.0.0

replace spawn-isolated/go => ../go
