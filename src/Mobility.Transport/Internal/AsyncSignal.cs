using System.Threading.Channels;

namespace Mobility.Transport.Internal;

/// <summary>Auto-reset wake-up for one waiting loop: many Set calls before a wait collapse into one.</summary>
internal sealed class AsyncAutoResetSignal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
        SingleWriter = false,
    });

    public void Set() => _channel.Writer.TryWrite(true);

    public ValueTask<bool> WaitAsync(CancellationToken cancellationToken) => _channel.Reader.ReadAsync(cancellationToken);
}
