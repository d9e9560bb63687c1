using ActorBackup.Engine.Restore;
using ActorBackup.Engine.Archive;

namespace ActorBackup.Node.Engine;

/// <summary>A live progress line on stderr (files, bytes, rate, ETA), only when stderr is a terminal.</summary>
public sealed class ProgressLine : IProgress<BackupProgress>, IProgress<RestoreProgress>, IDisposable
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly bool _enabled = !Console.IsErrorRedirected;
    private bool _printed;

    public void Report(BackupProgress p) => Print(p.FilesDone, p.FilesToRead, p.BytesDone, p.BytesToRead, $"{p.ChunksNew} new chunks");
    public void Report(RestoreProgress p) => Print(p.FilesDone, p.FilesTotal, p.BytesDone, p.BytesTotal, "");

    private void Print(long files, long filesTotal, long bytes, long bytesTotal, string extra)
    {
        if (!_enabled) return;
        var seconds = Math.Max(0.001, _clock.Elapsed.TotalSeconds);
        var rate = bytes / seconds;
        var eta = rate > 0 && bytesTotal > bytes ? TimeSpan.FromSeconds((bytesTotal - bytes) / rate) : TimeSpan.Zero;
        var percent = bytesTotal > 0 ? 100.0 * bytes / bytesTotal : 100;
        lock (this)
        {
            Console.Error.Write($"\r{percent,5:F1}%  {files}/{filesTotal} files  {bytes / 1048576.0:F0}/{bytesTotal / 1048576.0:F0} MiB  {rate / 1e6:F0} MB/s  ETA {eta:mm\\:ss}  {extra}   ");
            _printed = true;
        }
    }

    public void Dispose()
    {
        if (_printed) Console.Error.WriteLine();
    }
}
