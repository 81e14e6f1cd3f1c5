// transport-bench: mobile TCP (Mobility.Transport) against its anchors, on loopback.
//
//   transport-bench throughput [--seconds 3] [--rounds 5] [--chunk 65536]
//       one connection, one direction, in this process: plain TCP socket, mobile (encrypted),
//       mobile (authenticate-only), alternating; Gbit/s, CPU-s per GB, ratios.
//   transport-bench handshake [--count 200] [--rounds 5]
//       time to a usable connection: TCP connect, TCP connect + TLS 1.3 handshake (SslStream,
//       self-signed ECDSA P-256), mobile connect (TCP + ClientHello/ServerHello); p50/p99.
//   transport-bench idle [--connections 10000] [--concurrency 32] [--settle 10] [--no-relay] [--mobilityd PATH]
//       starts a real mobilityd, opens N mobile connections to its transport port, each forwarded
//       (open header) to an exposed port held by this process, and reports the daemon's RSS per
//       connection and its CPU while they idle. --no-relay: the connections stop before the open
//       header (the transport alone; one descriptor per connection instead of two).
//   transport-bench idle --in-process [--connections 2000]
//       the same without the daemon: listener and connector in this process, managed heap and RSS
//       per connection (both ends).
//   transport-bench flood [--attackers 10000] [--half-done 30] [--renew 5] [--samples 20]
//       handshakes under flood: new connections and resumes timed with no flood, then while that
//       many loopback attackers from as many sources (that percent half-done, the rest idle) renew
//       their connections every --renew seconds.
//   transport-bench datagrams [--seconds 2] [--rounds 5] [--size 1200] [--rate 0]
//       one direction, in this process: plain UDP (a socket pair) and DATAGRAM frames of one mobile
//       connection, alternating; datagrams sent and received per second and loss, unpaced or paced
//       at --rate per second; median mobile/udp received rate.
//
//   transport-bench relay [--seconds 3] [--rounds 5] [--chunk 65536] [--idle 2000] [--flood 0] [--relay PATH]
//       a real mobility-relay on loopback: one connection, one direction, alternating plain TCP, a raw flow
//       through the relay, the TCP connection through ssh -L over a jump host (ssh -J, a real sshd on loopback;
//       left out without sshd), mobile direct and mobile through the relay (Gbit/s, CPU-s per GB of this process
//       and of the relay or ssh+sshd); then the relay's RSS per idle relayed connection; then (--flood N) N silent
//       unauthenticated connections: the relay's CPU and RSS, how many it held, and whether a host registers meanwhile.
//
// Every subcommand takes --json FILE to write its results.
using System.Globalization;
using Mobility.Bench.Transport;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: transport-bench throughput|handshake|idle|flood|datagrams|relay [options] (see the top of Program.cs or docs/benchmarks.md)");
    return args.Length == 0 ? 64 : 0;
}

var options = new Dictionary<string, string>(StringComparer.Ordinal);
var flags = new HashSet<string>(StringComparer.Ordinal);
for (var i = 1; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal))
    {
        Console.Error.WriteLine($"transport-bench: unexpected argument {args[i]}");
        return 64;
    }

    if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
    {
        options[args[i]] = args[++i];
    }
    else
    {
        flags.Add(args[i]);
    }
}

int Int(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

Limits.RaiseFileLimit();
var json = options.GetValueOrDefault("--json");
return args[0] switch
{
    "throughput" => await Throughput.RunAsync(Int("--seconds", 3), Int("--rounds", 5), Int("--chunk", 64 * 1024), options.GetValueOrDefault("--only"), json),
    "relay" => await RelayBench.RunAsync(Int("--seconds", 3), Int("--rounds", 5), Int("--chunk", 64 * 1024), Int("--idle", 2000), Int("--flood", 0), options.GetValueOrDefault("--relay"), json),
    "handshake" => await Handshake.RunAsync(Int("--count", 200), Int("--rounds", 5), json),
    "idle" when flags.Contains("--in-process") => await IdleConnections.RunInProcessAsync(Int("--connections", 2000), Int("--concurrency", 32), Int("--settle", 5), json),
    "idle" => await IdleConnections.RunAgainstDaemonAsync(Int("--connections", 10_000), Int("--concurrency", 32), Int("--settle", 10),
        !flags.Contains("--no-relay"), options.GetValueOrDefault("--mobilityd"), json),
    "datagrams" => await Datagrams.RunAsync(Int("--seconds", 2), Int("--rounds", 5), Int("--size", 1200), Int("--rate", 0), json),
    "flood" => await Flood.RunAsync(Int("--attackers", 10_000), Int("--half-done", 30), Int("--renew", 5), Int("--samples", 20), json),
    _ => Usage(args[0]),
};

static int Usage(string command)
{
    Console.Error.WriteLine($"transport-bench: unknown command {command}");
    return 64;
}
