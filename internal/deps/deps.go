//go:build deps

// Package deps pins modules the project has chosen before any code imports
// them (go mod tidy keeps what a build-tagged file imports): pgx for the
// PostgreSQL state backend. Each line goes once the module is imported for
// real.
package deps

import (
	_ "github.com/jackc/pgx/v5/pgxpool"
)
