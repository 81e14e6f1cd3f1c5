using System.CommandLine;
using Mobility.Hosting;
using Mobility.Relay.Host;

var listen = new Option<string>("--listen")
{
    Description = $"Plain TCP endpoint, IP:PORT or [IPv6]:PORT ([::] serves IPv4 and IPv6); port 0 picks one; \"off\" turns it off (Relay:Listen). Default: {RelayHostOptions.DefaultListen}",
};
var tlsListen = new Option<string>("--tls-listen")
{
    Description = "TLS endpoint too, e.g. [::]:443 for networks that let only HTTPS out (Relay:TlsListen). Needs --tls-cert and --tls-key. Default: off",
};
var tlsCert = new Option<string>("--tls-cert") { Description = "PEM certificate (chain) of the TLS endpoint (Relay:TlsCert)." };
var tlsKey = new Option<string>("--tls-key") { Description = "PEM private key of the TLS endpoint (Relay:TlsKey)." };
var allow = new Option<string>("--allow")
{
    Description = "File of admitted GUIDs, one per line, '#' starts a comment (Relay:Allow). Default: every GUID that proves its key may register.",
};
var advertise = new Option<string>("--advertise")
{
    Description = "Public IP:PORT[,IP:PORT...] that hosts may name in their proofs besides the address they reached (a relay behind a port forward) (Relay:Advertise).",
};
var metrics = new Option<string>("--metrics")
{
    Description = "HTTP endpoint serving GET /metrics (Prometheus text), IP:PORT (Relay:Metrics). Default: off",
};

var serve = new Command("serve",
    "Run a relay: hosts register by proving their GUID, peers dial a registered GUID, and the relay splices the two TCP " +
    "connections byte for byte (it sees only GUIDs, sizes and timing; docs/protocol.md \"Relay\", docs/nat.md). Nothing is kept on disk. " +
    "Settings come from ./appsettings.json, environment variables (RELAY_Relay__Limits__MaxHosts=...) and these flags, in rising priority. " +
    "Prints one line to stdout once listening: 'mobility-relay listening tcp=IP:PORT tls=IP:PORT|off metrics=URL|off admission=any|allow-list:N'. Logs go to stderr.")
{
    listen, tlsListen, tlsCert, tlsKey, allow, advertise, metrics,
};
serve.SetAction((parseResult, cancellationToken) => RelayServeCommand.RunAsync(
    ServerHost.Overrides(parseResult,
        (listen, "Relay:Listen"), (tlsListen, "Relay:TlsListen"), (tlsCert, "Relay:TlsCert"), (tlsKey, "Relay:TlsKey"),
        (allow, "Relay:Allow"), (advertise, "Relay:Advertise"), (metrics, "Relay:Metrics")),
    cancellationToken));

var root = new RootCommand("mobility-relay: a relay for Mobility hosts that cannot be reached directly (behind NATs); it sees only ciphertext.");
root.Subcommands.Add(serve);
return await RelayServeCommand.Executable.InvokeAsync(root, args);
