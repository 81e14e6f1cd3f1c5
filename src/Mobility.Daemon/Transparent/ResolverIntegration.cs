using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Internal;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// Puts the DNS stub into the host's resolver while transparent mode is on (docs/transparent.md, "Resolver"):
/// with systemd-resolved, a dummy link <see cref="ResolvedLink"/> whose DNS server is the stub and whose
/// routing-only domains are <c>~mob ~guid</c> (so only those names reach the stub); otherwise resolv.conf,
/// whose content is first copied to &lt;StateDir&gt;/<see cref="BackupFileName"/>, rewritten with the stub as its only
/// nameserver (the stub passes other names to the servers of the copy), and put back on off. The rewrite is
/// in place, not a rename, so it also works where resolv.conf is a bind mount (ip netns exec) or a link.
/// </summary>
public sealed partial class ResolverIntegration
{
    public const string BackupFileName = "resolv.conf.backup";

    /// <summary>The first line of a resolv.conf that transparent mode wrote.</summary>
    public const string Marker = "# mobilityd transparent mode";

    public const string ResolvedLink = "mobility0";

    /// <summary>Present while systemd-resolved runs (its varlink socket).</summary>
    private const string ResolvedSocket = "/run/systemd/resolve/io.systemd.Resolve";

    private readonly TransparentOptions _options;
    private readonly string _backup;
    private readonly ILogger<ResolverIntegration> _logger;

    public ResolverIntegration(IOptions<MobilitydOptions> options, ILogger<ResolverIntegration> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value.Transparent;
        _backup = BackupPath(Path.GetFullPath(options.Value.StateDir));
        _logger = logger;
    }

    /// <summary>What is installed now: "none", "systemd-resolved (link mobility0)" or the resolv.conf path.</summary>
    public string Installed { get; private set; } = "none";

    public static string BackupPath(string stateDir) => Path.Combine(stateDir, BackupFileName);

    /// <summary>The stub's resolv.conf form: only an address, since resolv.conf has no port.</summary>
    public static string RewriteResolvConf(string original, IPAddress stub, string backup)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(stub);
        var kept = original.Split('\n').Where(l => !l.TrimStart().StartsWith("nameserver", StringComparison.Ordinal) && l.Length > 0);
        return $"{Marker}: the stub answers .mob and .guid and passes other names to the servers kept in {backup};\n"
               + "# 'mob transparent off' (or the daemon's stop) puts that file back.\n"
               + $"nameserver {stub}\n"
               + string.Concat(kept.Select(l => l + "\n"));
    }

    public async Task InstallAsync(IPEndPoint stub, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stub);
        var mode = _options.Resolver;
        if (mode == "auto")
        {
            mode = File.Exists(ResolvedSocket) ? "systemd-resolved" : "resolv.conf";
        }

        switch (mode)
        {
            case "none":
                return;
            case "systemd-resolved":
                await RunIgnoringAsync("ip", ["link", "del", ResolvedLink], cancellationToken).ConfigureAwait(false);
                await ExternalCommand.RunAsync("ip", ["link", "add", ResolvedLink, "type", "dummy"], cancellationToken: cancellationToken).ConfigureAwait(false);
                await ExternalCommand.RunAsync("ip", ["link", "set", ResolvedLink, "up"], cancellationToken: cancellationToken).ConfigureAwait(false);
                await ExternalCommand.RunAsync("resolvectl", ["dns", ResolvedLink, stub.ToString()], cancellationToken: cancellationToken).ConfigureAwait(false);
                await ExternalCommand.RunAsync("resolvectl", ["domain", ResolvedLink, "~mob", "~guid"], cancellationToken: cancellationToken).ConfigureAwait(false);
                Installed = $"systemd-resolved (link {ResolvedLink})";
                break;
            case "resolv.conf":
                if (stub.Port != 53)
                {
                    throw new ExternalCommandException($"resolv.conf names no port: the stub must listen on port 53 to be installed there, not {stub.Port} (Transparent:Dns).");
                }

                RestoreResolvConf();
                var original = File.ReadAllText(_options.ResolvConf);
                AtomicFile.Write(_backup, original);
                File.WriteAllText(_options.ResolvConf, RewriteResolvConf(original, stub.Address, _backup));
                Installed = _options.ResolvConf;
                break;
            default:
                throw new ExternalCommandException($"Transparent:Resolver '{mode}' is not auto, systemd-resolved, resolv.conf or none.");
        }

        Log.Installed(_logger, Installed, stub);
    }

    /// <summary>Takes the stub out again; also what a start after a crash runs (nothing happens when nothing is installed).</summary>
    public async Task RemoveAsync(CancellationToken cancellationToken)
    {
        if (Installed.StartsWith("systemd-resolved", StringComparison.Ordinal) || File.Exists(ResolvedSocket))
        {
            // Deleting the link drops its DNS settings in systemd-resolved too.
            await RunIgnoringAsync("ip", ["link", "del", ResolvedLink], cancellationToken).ConfigureAwait(false);
        }

        RestoreResolvConf();
        Installed = "none";
    }

    /// <summary>Puts the backup back when resolv.conf is still ours; leaves a file someone rewrote since (DHCP, an administrator) as it is.</summary>
    private void RestoreResolvConf()
    {
        if (!File.Exists(_backup))
        {
            return;
        }

        var current = File.Exists(_options.ResolvConf) ? File.ReadAllText(_options.ResolvConf) : "";
        if (current.StartsWith(Marker, StringComparison.Ordinal))
        {
            File.WriteAllText(_options.ResolvConf, File.ReadAllText(_backup));
            Log.Restored(_logger, _options.ResolvConf);
        }
        else
        {
            Log.NotOurs(_logger, _options.ResolvConf);
        }

        File.Delete(_backup);
    }

    private async Task RunIgnoringAsync(string file, string[] arguments, CancellationToken cancellationToken)
    {
        try
        {
            await ExternalCommand.RunAsync(file, arguments, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (ExternalCommandException e)
        {
            Log.Ignored(_logger, e.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8460, LogLevel.Information, "DNS stub {Stub} installed in the host's resolver: {Where}.")]
        public static partial void Installed(ILogger logger, string where, IPEndPoint stub);

        [LoggerMessage(8461, LogLevel.Information, "{Path} restored from its backup.")]
        public static partial void Restored(ILogger logger, string path);

        [LoggerMessage(8462, LogLevel.Warning, "{Path} was rewritten by someone else while transparent mode was on; left as it is.")]
        public static partial void NotOurs(ILogger logger, string path);

        [LoggerMessage(8463, LogLevel.Debug, "Ignored while cleaning up: {Error}.")]
        public static partial void Ignored(ILogger logger, string error);
    }
}
