module spawn-isolated/probe

go 1.21
