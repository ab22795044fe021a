import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
const before = process.hrtime.bigint() / 1000n;
const c = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir=/tmp/clockprof', '-e', 'const t=Date.now(); while(Date.now()-t<300);']);
await new Promise((r) => c.on('exit', r));
const after = process.hrtime.bigint() / 1000n;
const f = readdirSync('/tmp/clockprof').sort().at(-1)!;
const p = JSON.parse(readFileSync('/tmp/clockprof/' + f, 'utf8'));
console.log('parent before', before, 'profile start', p.startTime, 'end', p.endTime, 'parent after', after);
