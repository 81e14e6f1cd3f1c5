using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Internal;
using Mobility.Daemon.Peers;
using Mobility.Daemon.Records;
using Mobility.Daemon.Service;
using Mobility.Net.Threading;

namespace Mobility.Daemon.State;

/// <summary>
/// The file face of the API: &lt;StateDir&gt;/state/ holds <c>guid</c>, <c>addresses</c> (one per
/// line), <c>hosts</c> (hosts(5) format: <c>&lt;address&gt; &lt;guid&gt;.guid [name]</c> for this host
/// and every known peer) and <c>status.json</c> (the API's status message). Each file is rewritten
/// atomically (temporary file, then rename) shortly after every change, so readers never see half a file.
/// </summary>
public sealed partial class StateFiles : BackgroundService
{
    public const string FolderName = "state";

    /// <summary>Changes within this window are written once.</summary>
    private static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(2);

    private readonly DaemonApi _api;
    private readonly AddressMonitor _addresses;
    private readonly RecordPublisher _publisher;
    private readonly PeerBook _peers;
    private readonly MobilitydOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<StateFiles> _logger;
    private readonly AsyncAutoResetSignal _dirty = new();
    private readonly Dictionary<string, string> _written = new(StringComparer.Ordinal);

    public StateFiles(DaemonApi api, AddressMonitor addresses, RecordPublisher publisher, PeerBook peers, IOptions<MobilitydOptions> options,
        TimeProvider time, ILogger<StateFiles> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _api = api;
        _addresses = addresses;
        _publisher = publisher;
        _peers = peers;
        _options = options.Value;
        _time = time;
        _logger = logger;
        Folder = Path.Combine(Path.GetFullPath(_options.StateDir), FolderName);
    }

    public string Folder { get; }

    /// <summary>Written file generations (for tests: increases with every pass that changed a file).</summary>
    public long Passes { get; private set; }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // The files exist before the daemon reports ready.
        WriteAll();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var subscription = _addresses.Subscribe(_dirty.Set);
        _publisher.Changed += _dirty.Set;
        _peers.Changed += _dirty.Set;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await _dirty.WaitAsync(Timeout.InfiniteTimeSpan, _time, stoppingToken).ConfigureAwait(false);
                await Task.Delay(Coalesce, _time, stoppingToken).ConfigureAwait(false);
                _dirty.TryReset();
                try
                {
                    WriteAll();
                }
#pragma warning disable CA1031 // A failed pass (a status read that raced a change) must not end the files' upkeep: the next change writes them.
                catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
                {
                    Log.PassFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            _publisher.Changed -= _dirty.Set;
            _peers.Changed -= _dirty.Set;
        }
    }

    private void WriteAll()
    {
        var status = _api.GetStatus(includeConnections: false);
        var changed = false;
        changed |= Write("guid", status.Guid + "\n");
        changed |= Write("addresses", string.Concat(status.Addresses.Select(a => a + "\n")));
        changed |= Write("hosts", Hosts(status));
        changed |= Write("status.json", JsonFormatter.Default.Format(ApiMapping.ToProto(status)) + "\n");
        if (changed)
        {
            Passes++;
        }
    }

    private string Hosts(DaemonStatus status)
    {
        var sb = new StringBuilder();
        sb.Append("# Written by mobilityd; rewritten on every change. <address> <guid>.guid [name]\n");
        var self = string.IsNullOrEmpty(_options.Name) ? "" : " " + _options.Name.ToLowerInvariant();
        foreach (var address in status.Addresses)
        {
            sb.Append(address).Append(' ').Append(status.Guid).Append(".guid").Append(self).Append('\n');
        }

        foreach (var peer in _peers.Snapshot())
        {
            var name = peer.Name is null ? "" : " " + peer.Name;
            foreach (var address in peer.Addresses)
            {
                sb.Append(address).Append(' ').Append(peer.Guid).Append(".guid").Append(name).Append('\n');
            }
        }

        return sb.ToString();
    }

    private bool Write(string name, string content)
    {
        if (_written.TryGetValue(name, out var previous) && previous == content)
        {
            return false;
        }

        try
        {
            AtomicFile.Write(Path.Combine(Folder, name), content);
            _written[name] = content;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.WriteFailed(_logger, name, e.Message);
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Warning, "Could not write state file {Name}: {Error}.")]
        public static partial void WriteFailed(ILogger logger, string name, string error);

        [LoggerMessage(6002, LogLevel.Error, "Could not bring the state files up to date; the next change tries again.")]
        public static partial void PassFailed(ILogger logger, Exception exception);
    }
}
