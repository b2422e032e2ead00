module spawn-isolated/go

go 1.21
