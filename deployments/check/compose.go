package check

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// LoadCompose loads a compose file as `docker compose config` does: the
// compose specification's JSON schema is enforced (a property the
// specification does not have fails, except x- extensions), variables are
// interpolated from env, and relative paths are resolved against the file's
// folder.
func LoadCompose(ctx context.Context, file string, env map[string]string) (*types.Project, error) {
	dir := filepath.Dir(file)
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: env,
	}, func(o *loader.Options) {
		o.ResolvePaths = true
	})
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", file, err)
	}
	return p, nil
}
