using System.Net;

namespace Mobility.Daemon.Forwarding;

/// <summary>
/// One local source of a UDP session (a UDP forward's, or an intercepted flow's): its datagrams wait here, at most
/// <see cref="UdpForwards.MaxPendingDatagrams"/>, until the connection is open, then go to the relay.
/// </summary>
internal sealed class UdpSession(IPEndPoint source)
{
    private readonly Lock _gate = new();
    private List<byte[]>? _pending = [];
    private UdpRelay? _relay;

    public IPEndPoint Source { get; } = source;

    public void Deliver(ReadOnlySpan<byte> datagram)
    {
        lock (_gate)
        {
            if (_relay is null)
            {
                if (_pending!.Count < UdpForwards.MaxPendingDatagrams)
                {
                    _pending.Add(datagram.ToArray());
                }

                return;
            }
        }

        _relay.FromLocal(datagram);
    }

    public void Attach(UdpRelay relay)
    {
        lock (_gate)
        {
            foreach (var datagram in _pending!)
            {
                relay.FromLocal(datagram);
            }

            _pending = null;
            _relay = relay;
        }
    }
}
