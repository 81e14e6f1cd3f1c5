using System.CommandLine;
using Mobility.Gns.Host;
using Mobility.Hosting;

var data = new Option<string>("--data")
{
    Description = "Folder of the SQLite database (Gns:DataDirectory). Default: ./gns-data",
};
var udp = new Option<string>("--udp")
{
    Description = $"UDP endpoint of the datagram protocol, IP:PORT or [IPv6]:PORT ([::] serves IPv4 and IPv6); port 0 picks one; empty or \"off\" turns it off (Gns:Udp). Default: {GnsHostOptions.DefaultUdp}",
};
var udpReflect = new Option<string>("--udp-reflect")
{
    Description = "A second UDP endpoint, IP:PORT on the address of --udp with another port, that answers only Reflect datagrams, " +
                  "so hosts can tell how their NAT maps and filters (docs/nat.md); port 0 picks one; printed as reflect= in the ready line (Gns:UdpReflect). Default: off",
};
var http = new Option<string>("--http")
{
    Description = $"HTTP/1.1 endpoint for HTTP/JSON, IP:PORT; port 0 picks one (Gns:Http). Default: {GnsHostOptions.DefaultHttp}",
};
var grpc = new Option<string>("--grpc")
{
    Description = $"HTTP/2 cleartext endpoint for gRPC, IP:PORT; port 0 picks one; empty or \"off\" turns it off (Gns:Grpc). Default: {GnsHostOptions.DefaultGrpc}",
};
var tlsListen = new Option<string>("--tls-listen")
{
    Description = "Also serve the datagram protocol over TLS at IP:PORT (e.g. [::]:443), each message length-prefixed (docs/protocol.md, " +
                  "\"GNS over TLS\"), for hosts on networks that let only HTTPS out; printed as tls= in the ready line (Gns:TlsListen). " +
                  "Needs --tls-cert and --tls-key. Default: off",
};
var tlsCert = new Option<string>("--tls-cert")
{
    Description = "PEM certificate (chain) of --tls-listen; clients pin the SHA-256 of its DER encoding (Gns:TlsCert).",
};
var tlsKey = new Option<string>("--tls-key")
{
    Description = "PEM private key of --tls-listen (Gns:TlsKey).",
};
var memory = new Option<bool>("--memory")
{
    Description = "Keep records in memory only, lost at exit (Gns:Store=memory). Default: sqlite",
};

var redis = new Option<string>("--redis")
{
    Description = "Keep records in Redis instead (StackExchange.Redis connection string, e.g. 127.0.0.1:6379 or a cluster's seed nodes); " +
                  "several gns processes may share it (Gns:Store=redis, Gns:Redis:Configuration). See docs/redis.md for durability settings.",
};
var dns = new Option<string>("--dns")
{
    Description = "Also answer DNS (UDP and TCP) at IP:PORT for <guid>.ZONE and <name>.ZONE: A, AAAA, TXT (Gns:Dns). Needs --zone.",
};
var zone = new Option<string>("--zone")
{
    Description = "The DNS zone served by --dns, e.g. gns.example (Gns:Zone).",
};

var serve = new Command("serve",
    "Run the GNS server. Settings come from ./appsettings.json, environment variables (GNS_Gns__Udp=...) and these flags, " +
    "in rising priority. Prints one line to stdout once listening: " +
    "'gns listening udp=IP:PORT http=http://IP:PORT grpc=http://IP:PORT store=sqlite:/abs/dir', followed by dns=IP:PORT, reflect=IP:PORT and tls=IP:PORT when those are on. Logs go to stderr.")
{
    data, udp, udpReflect, http, grpc, tlsListen, tlsCert, tlsKey, memory, redis, dns, zone,
};
serve.SetAction((parseResult, cancellationToken) =>
{
    var overrides = ServerHost.Overrides(parseResult,
        (data, "Gns:DataDirectory"), (udp, "Gns:Udp"), (udpReflect, "Gns:UdpReflect"), (http, "Gns:Http"), (grpc, "Gns:Grpc"), (dns, "Gns:Dns"), (zone, "Gns:Zone"),
        (tlsListen, "Gns:TlsListen"), (tlsCert, "Gns:TlsCert"), (tlsKey, "Gns:TlsKey"));
    if (parseResult.GetValue(memory) && parseResult.GetValue(redis) is not null)
    {
        return GnsServeCommand.Executable.UsageErrorAsync("--memory and --redis exclude each other.");
    }

    if (parseResult.GetValue(memory))
    {
        overrides["Gns:Store"] = "memory";
    }

    if (parseResult.GetValue(redis) is { } connection)
    {
        overrides["Gns:Store"] = "redis";
        overrides["Gns:Redis:Configuration"] = connection;
    }

    return GnsServeCommand.RunAsync(overrides, cancellationToken);
});

var root = new RootCommand("gns: the Global Name Service of Mobility (GUID -> addresses).");
root.Subcommands.Add(serve);
return await GnsServeCommand.Executable.InvokeAsync(root, args);
