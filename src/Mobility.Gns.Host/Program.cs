using System.CommandLine;
using Mobility.Gns.Host;

var data = new Option<string>("--data")
{
    Description = "Folder of the SQLite database (Gns:DataDirectory). Default: ./gns-data",
};
var udp = new Option<string>("--udp")
{
    Description = $"UDP endpoint of the datagram protocol, IP:PORT; port 0 picks one; empty turns it off (Gns:Udp). Default: {GnsHostOptions.DefaultUdp}",
};
var http = new Option<string>("--http")
{
    Description = $"HTTP/1.1 endpoint for HTTP/JSON, IP:PORT; port 0 picks one (Gns:Http). Default: {GnsHostOptions.DefaultHttp}",
};
var grpc = new Option<string>("--grpc")
{
    Description = $"HTTP/2 cleartext endpoint for gRPC, IP:PORT; port 0 picks one; empty turns it off (Gns:Grpc). Default: {GnsHostOptions.DefaultGrpc}",
};
var memory = new Option<bool>("--memory")
{
    Description = "Keep records in memory only, lost at exit (Gns:Store=memory). Default: sqlite",
};

var serve = new Command("serve",
    "Run the GNS server. Settings come from ./appsettings.json, environment variables (GNS_Gns__Udp=...) and these flags, " +
    "in rising priority. Prints one line to stdout once listening: " +
    "'gns listening udp=IP:PORT http=http://IP:PORT grpc=http://IP:PORT store=sqlite:/abs/dir'. Logs go to stderr.");
serve.Options.Add(data);
serve.Options.Add(udp);
serve.Options.Add(http);
serve.Options.Add(grpc);
serve.Options.Add(memory);
serve.SetAction((parseResult, cancellationToken) =>
{
    var overrides = new Dictionary<string, string?>();
    void Set(Option<string> option, string key)
    {
        if (parseResult.GetResult(option) is { Implicit: false } && parseResult.GetValue(option) is { } value)
        {
            overrides[key] = value;
        }
    }

    Set(data, "Gns:DataDirectory");
    Set(udp, "Gns:Udp");
    Set(http, "Gns:Http");
    Set(grpc, "Gns:Grpc");
    if (parseResult.GetValue(memory))
    {
        overrides["Gns:Store"] = "memory";
    }

    return GnsServeCommand.RunAsync(overrides, cancellationToken);
});

var root = new RootCommand("gns: the Global Name Service of Mobility (GUID -> addresses).");
root.Subcommands.Add(serve);

// The generic host handles SIGINT/SIGTERM (and systemd's stop); System.CommandLine must not race it.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
