using System.Text;
using Mobility.Protocol.Relay;

namespace Mobility.Relay;

/// <summary>
/// What the relay counts (served as text by <c>GET /metrics</c>, Prometheus' exposition format).
/// The relay sees GUIDs, sizes and timing, and counts only totals of them.
/// </summary>
public sealed class RelayCounters
{
    private readonly long[] _refusals = new long[(int)RelayStatus.UnknownSplice + 1];
    private long _connections;
    private long _unidentifiedDropped;
    private long _firstMessageTimeouts;
    private long _malformed;
    private long _registrations;
    private long _dials;
    private long _splices;
    private long _spliceTimeouts;
    private long _splicesCut;
    private long _bytes;
    private int _unidentified;
    private int _hosts;
    private int _pending;
    private int _active;

    /// <summary>Connections accepted.</summary>
    public long Connections => Interlocked.Read(ref _connections);

    /// <summary>Connections closed at once because <see cref="RelayLimits.MaxUnidentified"/> were open.</summary>
    public long UnidentifiedDropped => Interlocked.Read(ref _unidentifiedDropped);

    /// <summary>Connections closed because their first message or proof did not arrive in time.</summary>
    public long FirstMessageTimeouts => Interlocked.Read(ref _firstMessageTimeouts);

    /// <summary>Connections closed because they sent something that is not the relay protocol.</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Registrations accepted.</summary>
    public long Registrations => Interlocked.Read(ref _registrations);

    /// <summary>Dials received (whatever their outcome).</summary>
    public long Dials => Interlocked.Read(ref _dials);

    /// <summary>Splices started.</summary>
    public long Splices => Interlocked.Read(ref _splices);

    /// <summary>Dials whose host did not open its data connection in time.</summary>
    public long SpliceTimeouts => Interlocked.Read(ref _spliceTimeouts);

    /// <summary>Splices cut because their host's registration ended (replaced or closed).</summary>
    public long SplicesCut => Interlocked.Read(ref _splicesCut);

    /// <summary>Bytes copied through splices, both directions.</summary>
    public long BytesRelayed => Interlocked.Read(ref _bytes);

    /// <summary>Connections open and not yet identified.</summary>
    public int Unidentified => Volatile.Read(ref _unidentified);

    /// <summary>Hosts registered now.</summary>
    public int Hosts => Volatile.Read(ref _hosts);

    /// <summary>Dials waiting for their host now.</summary>
    public int PendingSplices => Volatile.Read(ref _pending);

    /// <summary>Spliced pairs open now.</summary>
    public int ActiveSplices => Volatile.Read(ref _active);

    /// <summary>Refusals answered with <paramref name="status"/> (registrations, dials and accepts).</summary>
    public long Refusals(RelayStatus status) => Interlocked.Read(ref _refusals[(int)status]);

    internal void Connection() => Interlocked.Increment(ref _connections);

    internal void UnidentifiedDrop() => Interlocked.Increment(ref _unidentifiedDropped);

    internal void FirstMessageTimeout() => Interlocked.Increment(ref _firstMessageTimeouts);

    internal void MalformedInput() => Interlocked.Increment(ref _malformed);

    internal void Registered() => Interlocked.Increment(ref _registrations);

    internal void Dial() => Interlocked.Increment(ref _dials);

    internal void SpliceStarted() => Interlocked.Increment(ref _splices);

    internal void SpliceTimeout() => Interlocked.Increment(ref _spliceTimeouts);

    internal void SpliceCut() => Interlocked.Increment(ref _splicesCut);

    internal void Relayed(long bytes) => Interlocked.Add(ref _bytes, bytes);

    internal void Refused(RelayStatus status) => Interlocked.Increment(ref _refusals[(int)status]);

    internal ref int UnidentifiedGauge => ref _unidentified;

    internal ref int HostsGauge => ref _hosts;

    internal ref int PendingGauge => ref _pending;

    internal ref int ActiveGauge => ref _active;

    /// <summary>Every counter in Prometheus' text format.</summary>
    public string ToPrometheusText()
    {
        var text = new StringBuilder();
        void Counter(string name, string help, long value, string kind = "counter")
            => text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
                .Append("# TYPE ").Append(name).Append(' ').Append(kind).Append('\n')
                .Append(name).Append(' ').Append(value).Append('\n');

        Counter("relay_connections_total", "Connections accepted.", Connections);
        Counter("relay_unidentified_dropped_total", "Connections closed at once: too many unidentified.", UnidentifiedDropped);
        Counter("relay_first_message_timeouts_total", "Connections closed: first message or proof too late.", FirstMessageTimeouts);
        Counter("relay_malformed_total", "Connections closed: not the relay protocol.", Malformed);
        Counter("relay_registrations_total", "Registrations accepted.", Registrations);
        Counter("relay_dials_total", "Dials received.", Dials);
        Counter("relay_splices_total", "Splices started.", Splices);
        Counter("relay_splice_timeouts_total", "Dials whose host did not answer in time.", SpliceTimeouts);
        Counter("relay_splices_cut_total", "Splices cut because their host's registration ended.", SplicesCut);
        Counter("relay_bytes_total", "Bytes copied through splices, both directions.", BytesRelayed);
        Counter("relay_unidentified", "Connections not yet identified.", Unidentified, "gauge");
        Counter("relay_hosts", "Hosts registered.", Hosts, "gauge");
        Counter("relay_pending_splices", "Dials waiting for their host.", PendingSplices, "gauge");
        Counter("relay_active_splices", "Spliced pairs open.", ActiveSplices, "gauge");
        text.Append("# HELP relay_refusals_total Refusals by status.\n# TYPE relay_refusals_total counter\n");
        foreach (var status in Enum.GetValues<RelayStatus>().Where(s => s != RelayStatus.Ok))
        {
            text.Append("relay_refusals_total{status=\"").Append(Describe(status)).Append("\"} ").Append(Refusals(status)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>A status as a lowercase label.</summary>
    public static string Describe(RelayStatus status) => status switch
    {
        RelayStatus.Ok => "ok",
        RelayStatus.BadProof => "bad_proof",
        RelayStatus.NotAdmitted => "not_admitted",
        RelayStatus.RateLimited => "rate_limited",
        RelayStatus.Full => "full",
        RelayStatus.UnknownHost => "unknown_host",
        RelayStatus.HostTimeout => "host_timeout",
        _ => "unknown_splice",
    };
}
