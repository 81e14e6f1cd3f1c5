using System.Net;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Relay;

/// <summary>
/// A flow spliced by a relay (a dial through it, or a data connection a registration accepted): the
/// inner flow as it is, named with the relay it runs through, so a connection knows its path is
/// relayed (<see cref="MobileConnectionStatistics.Path"/>) and tries a direct one (docs/nat.md,
/// "Direct paths").
/// </summary>
public sealed class RelayedFlow(IFlow inner, IPEndPoint relay) : IFlow
{
    /// <summary>The relay the flow runs through.</summary>
    public IPEndPoint Relay { get; } = relay;

    public Stream Stream => inner.Stream;

    public IPEndPoint? LocalEndPoint => inner.LocalEndPoint;

    public IPEndPoint? RemoteEndPoint => inner.RemoteEndPoint;

    public bool IsHandshakePending => inner.IsHandshakePending;

    public bool? FirstFlightTaken => inner.FirstFlightTaken;

    public TimeSpan? SmoothedRtt => inner.SmoothedRtt;

    public void Abort() => inner.Abort();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
