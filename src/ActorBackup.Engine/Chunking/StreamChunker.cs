using System.Buffers;

namespace ActorBackup.Engine.Chunking;

/// <summary>
/// Cuts a stream into content-defined chunks without holding it in memory: one buffer of twice the maximum
/// chunk size, rented once and reused for every file this chunker reads. No allocation per chunk.
/// </summary>
public sealed class StreamChunker : IDisposable
{
    private readonly FastCdc _cdc;
    private byte[] _buffer;
    private Stream? _stream;
    private int _start, _end;
    private bool _eof;

    public int MinSize => _cdc.Options.MinSize;

    public StreamChunker(FastCdc cdc)
    {
        _cdc = cdc;
        _buffer = ArrayPool<byte>.Shared.Rent(cdc.Options.MaxSize * 2);
    }

    /// <summary>Starts reading a new stream. The chunker does not own it.</summary>
    public void Reset(Stream stream)
    {
        _stream = stream;
        _start = _end = 0;
        _eof = false;
    }

    /// <summary>
    /// The next chunk, or false at the end of the stream. The memory stays valid until the next call.
    /// Read errors propagate as the stream throws them.
    /// </summary>
    public bool TryNext(out ReadOnlyMemory<byte> chunk)
    {
        if (_stream is null) throw new InvalidOperationException("call Reset(stream) first");
        if (_end - _start < _cdc.Options.MaxSize && !_eof) Fill();
        if (_start == _end)
        {
            chunk = default;
            return false;
        }
        var length = _cdc.FindBoundary(_buffer.AsSpan(_start, _end - _start));
        chunk = new ReadOnlyMemory<byte>(_buffer, _start, length);
        _start += length;
        return true;
    }

    private void Fill()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        while (_end < _buffer.Length)
        {
            var read = _stream!.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
            {
                _eof = true;
                break;
            }
            _end += read;
        }
    }

    public void Dispose()
    {
        if (_buffer.Length > 0) ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}
