// ESLint flat config: typed typescript-eslint rules plus security checks. CONTRIBUTING.md says why
// each rule set is here and what was left out; `npm run lint` runs it with zero warnings allowed.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import security from 'eslint-plugin-security';
import regexp from 'eslint-plugin-regexp';
import noDynamicKeyWrite from './eslint-rules/no-dynamic-key-write.js';

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**', 'data/**', 'sbom/**', 'src/openapi-client/generated/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  security.configs.recommended,
  regexp.configs['flat/recommended'],
  {
    plugins: { local: { rules: { 'no-dynamic-key-write': noDynamicKeyWrite } } },
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['vitest.config.ts', 'vitest.faults.config.ts', 'vitest.fuzz.config.ts', 'test/faults/skewed-clock.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A `let` assigned once but read earlier by a closure (a timer cleared by a callback defined
      // before it is set) cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Ports are async by contract; an implementation that happens to be synchronous (SQLite) stays
      // `async` so a throw becomes a rejection like every other backend's.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        // `_name` marks a deliberately unused binding, e.g. a field dropped by destructuring.
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // Flags every `obj[variable]` read, array indexing included (hundreds of sites, none a write
      // under a request key). local/no-dynamic-key-write checks the sink that matters, with types.
      'security/detect-object-injection': 'off',
      'local/no-dynamic-key-write': 'error',
      // File paths come from the operator (configuration, CLI arguments, the data folder), never from
      // a request; the rule stays on where requests are handled (below) so that changes there are
      // looked at.
      'security/detect-non-literal-fs-filename': 'off',
      // safe-regex's star-height heuristic flags bounded, linear patterns such as (?:\.\d{1,9})?;
      // regexp/no-super-linear-backtracking analyses the automaton and finds the real ones.
      'security/detect-unsafe-regex': 'off',
      // A recipient's copy is a string when nothing needs doing and a promise when it is encrypted:
      // Promise.all over that mix is intended.
      '@typescript-eslint/await-thenable': ['error', { allowMixedPromiseArrays: true }],
    },
  },
  {
    // Layers that handle participants' requests: a file name built from request data is a traversal.
    files: ['src/api/**', 'src/pipeline/**', 'src/domain/**', 'src/ports/**', 'src/adapters/**', 'src/client/**'],
    rules: { 'security/detect-non-literal-fs-filename': 'error' },
  },
  {
    // Tests and benchmarks read JSON answers as `any` on purpose and assert on them, and the hostile
    // suites mutate messages under generated keys: the product code is what these rules protect.
    // Their regular expressions and comparisons never see a participant's input at run time. The cluster
    // fault campaign is such a test, run by hand (not by CI) from scripts/.
    files: ['test/**', 'bench/**', 'scripts/cluster-campaign.ts'],
    rules: {
      'local/no-dynamic-key-write': 'off',
      'security/detect-non-literal-regexp': 'off',
      'security/detect-possible-timing-attacks': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // Plain JS here is tooling (this file, bin/dip.js, the local rule, tool configs): no type information.
    files: ['**/*.js', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
    rules: { ...tseslint.configs.disableTypeChecked.rules, 'local/no-dynamic-key-write': 'off' },
  },
  {
    // CommonJS tool configuration (.dependency-cruiser.cjs).
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
  },
);
