import CLPoolCPU

/// Pooling on the CPU: the geometry is split into items and run on every core, each item by a C
/// kernel (Sources/CLPoolCPU) that writes its own outputs. Planes longer than `chunkLength` are
/// cut into chunks whose partial results fold in chunk order; the cut depends on the plane size
/// only, so the output is bitwise the same whatever the core count and the batch.
enum CPUPooling {
  static let chunkLength = 1 << 16
  /// Channels reduced together by one channels-last kernel call (its scratch rows fit in L1).
  static let channelTile = 2048

  /// Pools the planes of the input at `x` (laid out as `geometry`, elements of `type`) into `out`
  /// (one element of `type` per plane) and, when `indices` is given (max only), each plane's
  /// first-max position.
  static func pool(
    _ x: UnsafeRawPointer, _ type: ScalarType, _ geometry: PoolGeometry, average: Bool,
    into out: UnsafeMutableRawPointer, indices: UnsafeMutablePointer<Int64>?
  ) {
    let chunking = Chunking(length: geometry.spatialSize, chunkLength: chunkLength)
    let chunks = chunking.chunks
    let planes = geometry.planes
    let code = type.kernelCode
    // With one chunk the kernels write the final values; otherwise partials, folded below.
    let final = chunks == 1
    let partials = final ? nil : UnsafeMutableRawPointer.allocate(byteCount: planes * chunks * type.accumulatorWidth, alignment: 64)
    defer { partials?.deallocate() }
    let needIndices = indices != nil || (!average && !final)
    let partialIndices = final ? indices : needIndices ? UnsafeMutablePointer<Int64>.allocate(capacity: planes * chunks) : nil
    defer { if !final { partialIndices?.deallocate() } }
    let destination = partials ?? out
    let width = final ? type.byteWidth : type.accumulatorWidth
    let spatial = geometry.spatialSize
    switch geometry.layout {
    case .channelsFirst:
      let items = planes * chunks
      parallelFor(items, grain: max(1, 32_768 / min(spatial, chunkLength))) { range in
        let slot = destination + range.lowerBound * width
        if average {
          clpool_sum_items(code, x, spatial, chunking.chunkLength, range.lowerBound, range.count, slot)
        } else {
          clpool_max_items(
            code, x, spatial, chunking.chunkLength, range.lowerBound, range.count, slot, partialIndices.map { $0 + range.lowerBound })
        }
      }
    case .channelsLast:
      let channels = geometry.channels
      let tiles = (channels + channelTile - 1) / channelTile
      guard tiles > 0 else { return }
      let work = min(spatial, chunkLength) * min(channels, channelTile)
      parallelFor(geometry.batch * chunks * tiles, grain: max(1, 32_768 / work)) { range in
        for item in range {
          let tile = item % tiles, chunk = (item / tiles) % chunks, n = item / (tiles * chunks)
          let c0 = tile * channelTile, begin = chunk * chunking.chunkLength
          let positions = min(chunking.chunkLength, spatial - begin)
          let slot = (n * channels + c0) * chunks + chunk
          let start = x + (n * spatial + begin) * channels * type.byteWidth
          let tileWidth = min(channelTile, channels - c0)
          if average {
            clpool_sum_channels(code, start, channels, positions, c0, tileWidth, destination + slot * width, chunks, final ? 1 : 0)
          } else {
            let slotIndices = partialIndices.map { $0 + slot }
            clpool_max_channels(code, start, channels, positions, c0, tileWidth, destination + slot * width, slotIndices, chunks, final ? 1 : 0)
            if let slotIndices, begin > 0 {
              for c in 0..<tileWidth { slotIndices[c * chunks] += Int64(begin) }
            }
          }
        }
      }
    }
    guard let partials else { return }
    clpool_fold(
      code, average ? 1 : 0, partials, partialIndices, planes, chunks, spatial, out, indices, x,
      geometry.layout == .channelsLast ? 1 : 0, geometry.channels)
  }
}
