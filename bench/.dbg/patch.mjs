import https from 'node:https';
import net from 'node:net';
const origEmit = net.Server.prototype.emit;
net.Server.prototype.emit = function (ev, ...args) {
  if (ev === 'clientError') process.stderr.write(`CLIENTERROR ${args[0]?.code} ${args[0]?.message} bytesParsed=${args[0]?.bytesParsed} raw=${JSON.stringify(String(args[0]?.rawPacket ?? '').slice(0, 200))}\n`);
  return origEmit.call(this, ev, ...args);
};
