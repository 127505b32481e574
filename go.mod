module github.com/ruche-platform/ruche

go 1.26.0
