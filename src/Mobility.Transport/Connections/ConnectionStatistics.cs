namespace Mobility.Transport.Connections;

/// <summary>A connection's counters (changed by its owner under its lock; read as a snapshot).</summary>
internal sealed class ConnectionStatistics
{
    public long BytesSent { get; set; }

    public long BytesReceived { get; set; }

    public long BytesResent { get; set; }

    public long DuplicateBytesReceived { get; set; }

    public int Moves { get; set; }

    public int ResumeAttempts { get; set; }

    public int ResumesRejected { get; set; }

    public TimeSpan LastStall { get; set; }

    /// <summary>The last RTT measured on any path.</summary>
    public TimeSpan? LastRtt { get; set; }

    public long PingsSent { get; set; }

    /// <summary>Moves made by promoting a standby path (no connect, no Resume).</summary>
    public int StandbySwitches { get; set; }

    /// <summary>Switches from a relayed path to a direct one (<see cref="MobileConnection.PathKind"/>).</summary>
    public int DirectUpgrades { get; set; }

    /// <summary>Server: DATA payload bytes of a resumed path's first flight dropped for a gap (the client rewinds).</summary>
    public long GapBytesDropped { get; set; }

    public MobileConnectionStatistics Snapshot() => new(BytesSent, BytesReceived, BytesResent, DuplicateBytesReceived,
        Moves, ResumeAttempts, ResumesRejected, LastStall, LastRtt, PingsSent, StandbySwitches) { DirectUpgrades = DirectUpgrades, GapBytesDropped = GapBytesDropped };
}
